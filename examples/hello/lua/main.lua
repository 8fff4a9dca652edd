-- A minimal embedded-mode site: `ui-gateway --site examples/hello`.
local Hello = {type = "Hello"}
Hello.__index = Hello

function Hello:greeting()
  return "Hello, " .. (self.name ~= "" and self.name or "world") .. "!"
end

session:createAppVariable(setmetatable({name = ""}, Hello))
