"""The shared core every tier uses: settings, secrets, errors, logs, the work message, the
eligibility rules and the retry policy. It imports no tier and no backend."""
