{
  "targets": [
    {
      "target_name": "netlink_socket",
      "sources": ["netlink_socket.c"],
      "include_dirs": ["../../native"],
      "cflags": ["-O2", "-Wall", "-Wextra", "-std=gnu11"]
    }
  ]
}
