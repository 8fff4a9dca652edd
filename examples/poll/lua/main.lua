-- A poll: a question, options with a vote button and a count each, an input that adds an option
-- on Enter, and a total and a leader computed from the votes. One copy runs per browser session.

-- One answer. Its viewdef is viewdefs/Option.list-item.html, because the options are shown as a
-- list (lua.ViewList renders its rows in the `list-item` namespace).
Option = session:prototype("Option", {name = "", votes = 0})

function Option:vote()
  self.votes = self.votes + 1
end

-- The app, variable 1 (viewdefs/Poll.DEFAULT.html). `options = EMPTY`: every poll gets its own
-- table, given to `new` below, instead of one table shared through the prototype.
Poll = session:prototype("Poll", {question = "", options = EMPTY, newOption = ""})

function Poll:addOption()
  local name = (self.newOption or ""):match("^%s*(.-)%s*$")
  if name == "" then return end
  table.insert(self.options, Option:new({name = name}))
  self.newOption = ""
end

-- Computed values: a viewdef shows them with ui-value="total()" / "leader()", and they are
-- recomputed after every change, so they never go stale.
function Poll:total()
  local n = 0
  for _, option in ipairs(self.options) do
    n = n + option.votes
  end
  return n
end

function Poll:leader()
  local best
  for _, option in ipairs(self.options) do
    if option.votes > 0 and (best == nil or option.votes > best.votes) then
      best = option
    end
  end
  if best == nil then return "no votes yet" end
  return best.name
end

-- Guarded, so that a --watch rerun of this file keeps the votes (the prototypes above still get
-- the new methods).
if not session:getApp() then
  session:createAppVariable(Poll:new({
    question = "Which language for the next project?",
    options = {
      Option:new({name = "Lua"}),
      Option:new({name = "Rust"}),
      Option:new({name = "Python"}),
    },
  }))
end
