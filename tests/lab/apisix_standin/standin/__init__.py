"""The lab's stand-in for the Apache APISIX binary (tests only, never shipped): see README.md beside it.

Reads /usr/local/apisix/conf/config.yaml like APISIX 3 does, loads routes and upstreams from etcd through its v3
JSON gateway, proxies HTTP by them, runs the custom Lua plugins in luajit helpers and serves the admin, control and
status APIs. Standard library and PyYAML only.

- common: paths, constants, the error log
- config: config.yaml
- etcd: the etcd client and the start-up check
- plugins: the Lua plugin runtime (runner.lua)
- routing: routes, upstreams, weighted round robin
- httpserver: HTTP/1.1 connections and listeners
- server: the daemon's state, reloads, the etcd sync, the proxy
- api: the admin, control and status APIs
- cli: the `apisix` commands and the daemon
"""
