"""Server designs, one module each behind :class:`skqbench.servers.base.Server`; the
harness runs any of them in a child process (:mod:`skqbench.servers.harness`)."""
