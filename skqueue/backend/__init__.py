"""Linux mechanisms behind the kqueue filters, one module per kernel interface.

``epoll`` (the poller every kqueue waits in), ``timerfd``, ``inotify``, ``sockdiag``
(netlink sock_diag), ``proc_connector`` (netlink connector), ``pidfd``, ``fdinfo``
(per-fd ioctl/fcntl/getsockopt queries) and ``cpu`` (sched_getcpu).
"""
