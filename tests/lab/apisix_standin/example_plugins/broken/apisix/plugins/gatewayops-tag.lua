-- gatewayops-tag "broken": loads and passes its schema check, but every request through a route that enables it
-- gets a 500 from the access phase (tests only: the build that must fail the rolling update's health check).
local core = require("apisix.core")

local plugin_name = "gatewayops-tag"

local schema = {
    type = "object",
    properties = {
        note = {type = "string", default = ""},
    },
}

local _M = {
    version = 0.3,
    priority = 2900,
    name = plugin_name,
    schema = schema,
}

function _M.check_schema(conf)
    return core.schema.check(schema, conf)
end

function _M.access(conf, ctx)
    core.log.error("gatewayops-tag broken build: refusing the request")
    return 500, {error_msg = "gatewayops-tag broken build"}
end

function _M.header_filter(conf, ctx)
    core.response.set_header("X-Gatewayops-Tag", "broken")
end

return _M
