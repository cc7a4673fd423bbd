"""`extalerts verify`: each rule's rendered query run through the provider's own search API, compared
with what the engine expects from the Logpush archive, read-only."""
