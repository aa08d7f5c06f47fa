-- Lua runner of the lab's APISIX stand-in (tests only, never shipped).
--
-- A long-lived luajit process that loads the custom plugins and runs their phases. It speaks line-delimited
-- JSON over stdin/stdout, one answer per request, in order:
--   {"op":"load","lua_path":P,"plugins":[{"name","path","source"}]}
--       -> {"ok":true,"plugins":[{"name","priority","version","schema","path","phases":[...]}]}
--   {"op":"check_schema","name":N,"conf":C}   -> {"ok":true,"conf":C'} | {"ok":false,"error":E}
--   {"op":"access","plugins":[[N,C],...],"req":R}
--       -> {"ok":true,"exit":code?,"body":string?,"headers":{...},"req_headers":{...}?,"ctx":{...}}
--   {"op":"header_filter","plugins":[[N,C],...],"req":R,"ctx":{...},"status":S,"headers":{...}}
--       -> {"ok":true,"headers":{...}}
-- Anything the plugins log (core.log.*, ngx.log) goes to stderr, which the stand-in points at error.log.
-- A minimal `apisix.core` is provided; see README.md for what it covers.

local cjson = require("cjson.safe")
cjson.encode_sparse_array(true)

local plugins = {}        -- name -> module
local plugin_names = {}   -- in load (priority) order

local function log_line(level, ...)
    local parts = {}
    for i = 1, select("#", ...) do
        local v = select(i, ...)
        if type(v) == "table" and v.__delay_encode then
            v = cjson.encode(v.value) or "<unencodable>"
        end
        parts[#parts + 1] = tostring(v)
    end
    io.stderr:write(os.date("%Y/%m/%d %H:%M:%S"), " [", level, "] lua-runner: ", table.concat(parts), "\n")
    io.stderr:flush()
end

-- core.response.exit and ngx.exit do not return: they unwind to the phase runner with this marker.
local EXIT = {}

local function exit_with(code, body)
    error({[EXIT] = true, code = code, body = body}, 0)
end

-- the request being processed (one at a time: the runner is single-threaded)
local current = nil

local function lower_headers(headers)
    local out = {}
    for k, v in pairs(headers or {}) do
        out[string.lower(k)] = v
    end
    return out
end

local function encode_body(body)
    if body == nil then
        return nil
    end
    if type(body) == "table" then
        return (cjson.encode(body) or "") .. "\n"
    end
    return tostring(body)
end

local core = {
    version = {VERSION = "3.9.1-standin"},
    log = {},
    json = {
        encode = function(v) return cjson.encode(v) end,
        decode = function(s) return cjson.decode(s) end,
        delay_encode = function(v) return {__delay_encode = true, value = v} end,
        null = cjson.null,
    },
    response = {},
    request = {},
    schema = {},
    table = {
        new = function() return {} end,
        clear = function(t) for k in pairs(t) do t[k] = nil end end,
        nkeys = function(t) local n = 0 for _ in pairs(t) do n = n + 1 end return n end,
        insert = table.insert,
        concat = table.concat,
    },
    string = {
        find = function(s, pat) return string.find(s, pat, 1, true) end,
    },
}

for _, level in ipairs({"debug", "info", "notice", "warn", "error", "alert", "crit", "emerg"}) do
    core.log[level] = function(...)
        log_line(level, ...)
    end
end

function core.response.exit(code, body)
    exit_with(code, body)
end

function core.response.set_header(...)
    if not current then
        return
    end
    local args = {...}
    if type(args[1]) == "table" then
        for k, v in pairs(args[1]) do
            current.resp_headers[k] = v
        end
        return
    end
    for i = 1, #args, 2 do
        current.resp_headers[args[i]] = args[i + 1]
    end
end
core.response.add_header = core.response.set_header

function core.request.header(_ctx, name)
    if not current or type(name) ~= "string" then
        return nil
    end
    local v = current.req_headers[string.lower(name)]
    if type(v) == "table" then
        return v[1]
    end
    return v
end

function core.request.headers(_ctx)
    return current and current.req_headers or {}
end

function core.request.set_header(_ctx, name, value)
    if not current then
        return
    end
    current.req_headers[string.lower(name)] = value
    current.req_headers_changed = true
end

function core.request.get_method()
    return current and current.req.method
end

function core.request.get_uri_args(_ctx)
    return current and current.req.args or {}
end

local json_types = {
    object = function(v) return type(v) == "table" end,
    array = function(v) return type(v) == "table" end,
    string = function(v) return type(v) == "string" end,
    number = function(v) return type(v) == "number" end,
    integer = function(v) return type(v) == "number" and math.floor(v) == v end,
    boolean = function(v) return type(v) == "boolean" end,
    null = function(v) return v == cjson.null end,
}

-- Permissive stand-in for APISIX's jsonschema check: only the top-level `type` and `required` are
-- validated; top-level property defaults are filled in like APISIX's validator does.
function core.schema.check(schema, conf)
    if type(schema) ~= "table" then
        return true
    end
    if schema.type and json_types[schema.type] and not json_types[schema.type](conf) then
        return false, "wrong type: expected " .. schema.type .. ", got " .. type(conf)
    end
    if type(conf) == "table" then
        for _, name in ipairs(schema.required or {}) do
            if conf[name] == nil then
                return false, 'property "' .. name .. '" is required'
            end
        end
        for name, prop in pairs(schema.properties or {}) do
            if type(prop) == "table" and prop.default ~= nil and conf[name] == nil then
                conf[name] = prop.default
            end
        end
    end
    return true
end

-- a very small `ngx` for plugins that touch it directly
ngx = {
    DEBUG = 8, INFO = 7, NOTICE = 6, WARN = 5, ERR = 4, CRIT = 3, ALERT = 2, EMERG = 1,
    OK = 0, ERROR = -1, HTTP_OK = 200, HTTP_FORBIDDEN = 403, HTTP_NOT_FOUND = 404,
    HTTP_INTERNAL_SERVER_ERROR = 500, HTTP_SERVICE_UNAVAILABLE = 503,
    null = cjson.null,
    say = function() end,
    print = function() end,
    time = function() return os.time() end,
    now = function() return os.time() end,
    exit = function(code) exit_with(code, nil) end,
    req = {
        get_headers = function() return current and current.req_headers or {} end,
        set_header = function(name, value) core.request.set_header(nil, name, value) end,
        get_method = function() return current and current.req.method end,
        get_uri_args = function() return current and current.req.args or {} end,
    },
}
local level_names = {[8] = "debug", [7] = "info", [6] = "notice", [5] = "warn", [4] = "error", [3] = "crit",
                     [2] = "alert", [1] = "emerg"}
function ngx.log(level, ...)
    log_line(level_names[level] or "info", ...)
end
ngx.header = setmetatable({}, {
    __newindex = function(_, k, v) if current then current.resp_headers[k] = v end end,
    __index = function(_, k) return current and current.resp_headers[k] end,
})
ngx.var = setmetatable({}, {
    __index = function(_, k) return current and current.ctx.var[k] end,
})

package.preload["apisix.core"] = function() return core end

local function send(obj)
    local line, err = cjson.encode(obj)
    if not line then
        line = cjson.encode({ok = false, error = "failed to encode the answer: " .. tostring(err)})
    end
    io.stdout:write(line, "\n")
    io.stdout:flush()
end

local function plugin_info(name, mod, path)
    local phases = {}
    for _, phase in ipairs({"rewrite", "access", "header_filter", "body_filter", "log"}) do
        if type(mod[phase]) == "function" then
            phases[#phases + 1] = phase
        end
    end
    local schema = mod.schema
    if type(schema) ~= "table" then
        schema = {type = "object"}
    end
    -- the schema must be JSON: refuse a plugin whose schema is not (APISIX would fail on it too)
    if not cjson.encode(schema) then
        schema = {type = "object"}
    end
    return {name = name, priority = mod.priority, version = mod.version, schema = schema, path = path,
            phases = phases}
end

local function load_plugins(msg)
    if type(msg.lua_path) == "string" and msg.lua_path ~= "" then
        package.path = msg.lua_path .. ";" .. package.path
    end
    local loaded = {}
    for _, p in ipairs(msg.plugins or {}) do
        local modname = "apisix.plugins." .. p.name
        local chunk, err = loadstring(p.source, "@" .. p.path)
        if not chunk then
            return nil, "failed to load plugin [" .. p.name .. "] err: " .. tostring(err)
        end
        local ok, mod = pcall(chunk, modname)
        if not ok then
            return nil, "failed to load plugin [" .. p.name .. "] err: " .. tostring(mod)
        end
        if type(mod) ~= "table" then
            return nil, "failed to load plugin [" .. p.name .. "] err: the module did not return a table"
        end
        if type(mod.priority) ~= "number" then
            return nil, "invalid plugin [" .. p.name .. "], missing field: priority"
        end
        if mod.version == nil then
            return nil, "invalid plugin [" .. p.name .. "] missing field: version"
        end
        package.loaded[modname] = mod
        loaded[#loaded + 1] = {name = p.name, mod = mod, path = p.path}
    end
    table.sort(loaded, function(a, b) return a.mod.priority > b.mod.priority end)
    local infos = {}
    for _, item in ipairs(loaded) do
        if type(item.mod.init) == "function" then
            local ok, err = pcall(item.mod.init)
            if not ok then
                return nil, "failed to init plugin [" .. item.name .. "] err: " .. tostring(err)
            end
        end
        plugins[item.name] = item.mod
        plugin_names[#plugin_names + 1] = item.name
        infos[#infos + 1] = plugin_info(item.name, item.mod, item.path)
        log_line("info", "loaded plugin [", item.name, "] priority ", item.mod.priority, " from ", item.path)
    end
    return infos
end

local function check_schema(msg)
    local mod = plugins[msg.name]
    if not mod then
        return {ok = false, error = "unknown plugin [" .. tostring(msg.name) .. "]"}
    end
    local conf = msg.conf
    if type(mod.check_schema) == "function" then
        local ok, res, err = pcall(mod.check_schema, conf)
        if not ok then
            return {ok = false, error = "failed to check the configuration of plugin " .. msg.name ..
                    " err: " .. tostring(res)}
        end
        if not res then
            return {ok = false, error = "failed to check the configuration of plugin " .. msg.name ..
                    " err: " .. tostring(err)}
        end
    elseif type(mod.schema) == "table" then
        local ok, err = core.schema.check(mod.schema, conf)
        if not ok then
            return {ok = false, error = "failed to check the configuration of plugin " .. msg.name ..
                    " err: " .. tostring(err)}
        end
    end
    return {ok = true, conf = conf}
end

local function new_request(msg)
    local req = msg.req or {}
    local ctx = msg.ctx or {}
    ctx.var = {
        uri = req.path, request_uri = req.uri, request_method = req.method, args = req.query,
        host = req.host, remote_addr = req.remote_addr, server_port = req.server_port,
        route_id = req.route_id,
    }
    ctx.conf_type = "route"
    ctx.conf_id = req.route_id
    return {req = req, ctx = ctx, req_headers = lower_headers(req.headers), resp_headers = {}}
end

local function serialisable_ctx(ctx)
    local out = {}
    for k, v in pairs(ctx) do
        if k ~= "var" and type(k) == "string" then
            local t = type(v)
            if t == "string" or t == "number" or t == "boolean" then
                out[k] = v
            elseif t == "table" and cjson.encode(v) then
                out[k] = v
            end
        end
    end
    return out
end

local function run_phase(phase, chain, ctx)
    for _, item in ipairs(chain) do
        local name, conf = item[1], item[2]
        local mod = plugins[name]
        if mod and type(mod[phase]) == "function" then
            local ok, code, body = pcall(mod[phase], conf, ctx)
            if not ok then
                if type(code) == "table" and code[EXIT] then
                    return {exit = code.code, body = encode_body(code.body)}
                end
                error("plugin [" .. name .. "] " .. phase .. " phase failed: " .. tostring(code), 0)
            end
            if code or body then
                if type(code) == "number" and code >= 400 then
                    log_line("warn", name, " exits with http status code ", code)
                end
                return {exit = code or 200, body = encode_body(body)}
            end
        end
    end
    return nil
end

local function access(msg)
    current = new_request(msg)
    local chain = msg.plugins or {}
    local ok, res = pcall(function()
        return run_phase("rewrite", chain, current.ctx) or run_phase("access", chain, current.ctx)
    end)
    local answer
    if not ok then
        log_line("error", res)
        answer = {ok = false, error = tostring(res)}
    else
        answer = {ok = true, headers = current.resp_headers, ctx = serialisable_ctx(current.ctx)}
        if res then
            answer.exit = res.exit
            answer.body = res.body
        end
        if current.req_headers_changed then
            answer.req_headers = current.req_headers
        end
    end
    current = nil
    return answer
end

local function header_filter(msg)
    current = new_request(msg)
    current.ctx.var.status = msg.status
    current.upstream_headers = msg.headers or {}
    local answer
    local ok, err = pcall(function()
        for _, item in ipairs(msg.plugins or {}) do
            local mod = plugins[item[1]]
            if mod and type(mod.header_filter) == "function" then
                mod.header_filter(item[2], current.ctx)
            end
        end
    end)
    if ok then
        answer = {ok = true, headers = current.resp_headers}
    else
        if type(err) == "table" and err[EXIT] then
            err = "exit is not allowed in header_filter"
        end
        log_line("error", err)
        answer = {ok = false, error = tostring(err)}
    end
    current = nil
    return answer
end

for line in io.stdin:lines() do
    local msg, err = cjson.decode(line)
    if not msg then
        send({ok = false, error = "bad request: " .. tostring(err)})
    elseif msg.op == "load" then
        local infos, lerr = load_plugins(msg)
        if infos then
            send({ok = true, plugins = infos})
        else
            log_line("error", lerr)
            send({ok = false, error = lerr})
        end
    elseif msg.op == "check_schema" then
        send(check_schema(msg))
    elseif msg.op == "access" then
        send(access(msg))
    elseif msg.op == "header_filter" then
        send(header_filter(msg))
    elseif msg.op == "ping" then
        send({ok = true})
    else
        send({ok = false, error = "unknown op " .. tostring(msg.op)})
    end
end
