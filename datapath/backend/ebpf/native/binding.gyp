{
  "targets": [
    {
      "target_name": "l2tp_bpf",
      "sources": ["src/addon.c"],
      "defines": ["NAPI_VERSION=8", "_GNU_SOURCE"],
      "cflags": ["-O2", "-Wall", "-Wextra", "-Wno-unused-parameter", "-fvisibility=hidden"],
      "cflags_c": ["-std=gnu11"],
      "ldflags": ["-Wl,--exclude-libs,ALL"],
      "include_dirs": ["../build"],
      "libraries": []
    }
  ]
}
