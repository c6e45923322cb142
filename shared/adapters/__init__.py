"""One module per outside system (Firestore, Firebase Auth, Cloud Logging, Gemini, the environment)."""
