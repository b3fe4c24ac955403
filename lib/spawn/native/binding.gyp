{
  "targets": [
    {
      "target_name": "spawn_capture",
      "sources": ["spawn_capture.c"],
      "cflags": ["-O2", "-Wall", "-Wextra", "-std=gnu11", "-pthread"],
      "ldflags": ["-pthread"]
    }
  ]
}
