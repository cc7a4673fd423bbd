"""``extalerts drill``: end-to-end proof that a rule fires and notifies, through the provider itself.

:mod:`~extalerts.drill.view` builds the rule's temporary, scoped copy; :mod:`~extalerts.drill.traffic`
the events that must make it fire; :mod:`~extalerts.drill.backends` creates, observes and deletes the
copy per provider; :mod:`~extalerts.drill.runner` runs a drill and always cleans up.
"""
