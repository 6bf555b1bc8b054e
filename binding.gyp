{
  "targets": [
    {
      "target_name": "nea_native",
      "sources": [
        "src/native/addon.cc",
        "src/native/netns.cc",
        "src/native/packet.cc",
        "src/native/tuntap.cc",
        "src/native/udp.cc",
        "src/native/aead.cc"
      ],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NAPI_DISABLE_CPP_EXCEPTIONS"],
      "cflags_cc": ["-O2", "-std=c++17", "-Wall", "-Wextra", "-Werror=return-type"],
      "cflags_cc!": ["-fno-exceptions"]
    }
  ]
}
