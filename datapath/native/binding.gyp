{
  "targets": [
    {
      "target_name": "l2tp_pump",
      "sources": ["src/addon.c", "src/pump.c", "src/endpoint.c", "src/demux.c", "src/wire.c", "src/tap.c", "src/offload.c", "src/evlimit.c"],
      "include_dirs": ["../../lib/native"],
      "defines": ["NAPI_VERSION=8", "_GNU_SOURCE"],
      "cflags": ["-O3", "-Wall", "-Wextra", "-Wno-unused-parameter", "-fvisibility=hidden"],
      "cflags_c": ["-std=gnu11"],
      "libraries": ["-lpthread"]
    },
    {
      "target_name": "l2tp_pump_selftest",
      "sources": ["src/selftest.c", "src/demux.c", "src/wire.c", "src/offload.c", "src/evlimit.c"],
      "defines": ["NAPI_VERSION=8", "_GNU_SOURCE"],
      "cflags": ["-O3", "-Wall", "-Wextra", "-Wno-unused-parameter", "-fvisibility=hidden"],
      "cflags_c": ["-std=gnu11"]
    }
  ]
}
