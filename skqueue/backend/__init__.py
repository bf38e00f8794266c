"""Linux mechanisms behind the kqueue filters: epoll, timerfd, signalfd, inotify, netlink."""
