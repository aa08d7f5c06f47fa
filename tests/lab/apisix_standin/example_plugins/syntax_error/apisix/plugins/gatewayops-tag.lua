-- gatewayops-tag with a Lua syntax error (tests only): must be refused before it reaches a node.
local core = require("apisix.core")

local _M = {
    version = 0.4,
    priority = 2900,
    name = "gatewayops-tag",

function _M.header_filter(conf, ctx)
    core.response.set_header("X-Gatewayops-Tag", "syntax-error")
end

return _M
