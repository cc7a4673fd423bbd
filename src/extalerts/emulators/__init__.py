"""Local emulators of the provider APIs, for tests, benchmarks and a sandbox."""
