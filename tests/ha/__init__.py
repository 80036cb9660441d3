"""A real Home Assistant Core for tests: installer, process runner, REST and websocket client.

Nothing here imports Home Assistant: it lives in its own cached virtualenv (it pins
paho-mqtt 1.6, the project's venv has 2.x) and is driven over HTTP like a user's browser.
"""
