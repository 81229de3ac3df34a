"""Shared fixtures. Each peer has its own plugin module in tests/fixtures/."""

pytest_plugins = [
    "tests.fixtures.peers",
    "tests.fixtures.emulator",
    "tests.fixtures.moto",
    "tests.fixtures.scenarios",
    "tests.fixtures.browser",
]
