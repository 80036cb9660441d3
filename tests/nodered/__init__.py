"""Node-RED for tests: installed from npm into a cache, run headless on 127.0.0.1."""
