-- URL paths (docs/lua-api.md "URL paths"): the session's map of paths to presenters, and the
-- `lua.UrlPage` wrapper the page uses to show the presenter of its address.
--
-- A page whose app registered paths creates one variable under variable 1 with this wrapper and
-- its address as the `urlPath` property. The wrapper shows a page object (one per variable, kept
-- so its identity is stable) with two fields the page binds: `presenter`, what it renders, and
-- `path`, its address. The page writes `path` on Back and Forward; `session:navigate` moves every
-- page of the session to a new path, and the page pushes it onto the browser's history.
local session, create_app = ...

local paths = {}        -- path -> presenter
local any = false       -- whether the app registered a path
local current = nil     -- the path of the last session:navigate
local version = 0       -- bumped by session:navigate
local pages = {}        -- variable id -> page object
local warned = {}       -- unknown paths already logged

local function normalize(p)
  if type(p) ~= "string" then error("bad-message: a URL path is a string", 0) end
  if p == "" then return "/" end
  if p:sub(1, 1) ~= "/" then p = "/" .. p end
  if #p > 1 and p:sub(-1) == "/" then p = p:sub(1, -2) end
  return p
end

local function mark_app()
  if any and session:getApp() ~= nil then
    local v = session:getVariable(1)
    if v ~= nil then v:setProperty("urlPaths", "on") end
  end
end

local MAX_PAGES = 64

-- Pages whose variable is gone (a closed tab) are dropped once there are many.
local function sweep()
  local n = 0
  for _ in pairs(pages) do n = n + 1 end
  if n < MAX_PAGES then return end
  for id in pairs(pages) do
    if session:getVariable(id) == nil then pages[id] = nil end
  end
end

local UrlPage = {}

function UrlPage:computeValue(var)
  local page = pages[var.id]
  if page == nil then
    sweep()
    page = {type = "lua.UrlPage", path = normalize(var:getProperty("urlPath") or "/"), version = version}
    pages[var.id] = page
  elseif page.version ~= version then
    page.version = version
    page.path = current
  end
  local ok, p = pcall(normalize, page.path)
  if not ok then p = "/" end
  page.path = p
  local presenter = paths[p]
  if presenter == nil then
    if p ~= "/" and not warned[p] then
      warned[p] = true
      session:log("warn", "unknown URL path " .. p .. ": showing the default view")
    end
    presenter = paths["/"] or session:getApp()
  end
  page.presenter = presenter
  return page
end

function UrlPage.destroy() end

local function register(path, presenter)
  if presenter == nil then error("bad-message: registerUrlPath needs a presenter", 0) end
  if not any then
    any = true
    ui.registerWrapper("lua.UrlPage", UrlPage)
  end
  paths[normalize(path)] = presenter
  mark_app()
end

local function resolve(path)
  return paths[normalize(path)]
end

local function navigate(path)
  current = normalize(path)
  version = version + 1
end


session.registerUrlPath = function(first, ...)
  if first == session then return register(...) end
  return register(first, ...)
end
session.resolveUrlPath = function(first, ...)
  if first == session then return resolve(...) end
  return resolve(first, ...)
end
session.navigate = function(first, ...)
  if first == session then return navigate(...) end
  return navigate(first, ...)
end
session.createAppVariable = function(...)
  local id = create_app(...)
  mark_app()
  return id
end
