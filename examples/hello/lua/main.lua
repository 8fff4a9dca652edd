-- A minimal embedded-mode site: `ui-gateway examples/hello`. It also shows URL paths: the page at
-- /<session>/about is the About presenter, the buttons move between the two pages, and the
-- browser's Back and Forward buttons work.
Hello = session:prototype("Hello", {name = ""})

function Hello:greeting()
  return "Hello, " .. (self.name ~= "" and self.name or "world") .. "!"
end

function Hello:about()
  session:navigate("/about")
end

About = session:prototype("About", {hello = EMPTY})

function About:greeting()
  return self.hello:greeting()
end

function About:back()
  session:navigate("/")
end

if not session:getApp() then
  local hello = Hello:new()
  session:registerUrlPath("/", hello)
  session:registerUrlPath("/about", About:new({hello = hello}))
  session:createAppVariable(hello)
end
