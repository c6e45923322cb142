"""The pure core: no Flask, no network, no Firestore. Everything here is plain data and arithmetic,
so it can be unit-tested with hypothesis and reused by every function."""
