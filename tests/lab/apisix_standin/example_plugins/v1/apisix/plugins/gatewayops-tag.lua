-- gatewayops-tag v1: example custom plugin of the lab (tests only). Adds X-Gatewayops-Tag: v1 to every response
-- of the routes that enable it, so tests can see which version a node runs.
local core = require("apisix.core")

local plugin_name = "gatewayops-tag"

local schema = {
    type = "object",
    properties = {
        note = {type = "string", default = ""},
    },
}

local _M = {
    version = 0.1,
    priority = 2900,
    name = plugin_name,
    schema = schema,
}

function _M.check_schema(conf)
    return core.schema.check(schema, conf)
end

function _M.header_filter(conf, ctx)
    core.response.set_header("X-Gatewayops-Tag", "v1")
end

return _M
