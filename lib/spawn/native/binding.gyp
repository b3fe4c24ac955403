{
  "targets": [
    {
      "target_name": "spawn_capture",
      "sources": ["spawn_capture.c"],
      "include_dirs": ["../../native"],
      "cflags": ["-O2", "-Wall", "-Wextra", "-std=gnu11", "-pthread"],
      "ldflags": ["-pthread"]
    }
  ]
}
