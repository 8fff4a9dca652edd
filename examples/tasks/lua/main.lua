-- Tasks: a to-do list with a filter. The list is shown through lua.ViewList, so
-- each row keeps its identity while tasks are added, removed or filtered.

-- Trims white space in linear time. (The usual `s:match("^%s*(.-)%s*$")` backtracks quadratically on a
-- long run of spaces: a long enough input field would keep the session busy until its time limit.)
local function trim(s)
  local first = s:find("%S")
  if not first then return "" end
  return s:sub(first, #s - s:reverse():find("%S") + 1)
end

Task = session:prototype("Task", {name = "", completed = false, app = EMPTY})

function Task:remove()
  self.app:removeTask(self)
end

TasksApp = session:prototype("TasksApp", {tasks = EMPTY, newName = "", filter = "all"})

function TasksApp:add(name)
  local task = Task:new({name = name, app = self})
  table.insert(self.tasks, task)
  return task
end

-- Appends `newName` unless it is blank, then clears it.
function TasksApp:addTask()
  local name = trim(self.newName or "")
  if name == "" then return end
  self:add(name)
  self.newName = ""
end

function TasksApp:clearNew()
  self.newName = ""
end

function TasksApp:removeTask(task)
  for i, t in ipairs(self.tasks) do
    if t == task then
      table.remove(self.tasks, i)
      return
    end
  end
end

function TasksApp:remaining()
  local n = 0
  for _, t in ipairs(self.tasks) do
    if not t.completed then n = n + 1 end
  end
  return n
end

-- The tasks the current filter shows: `all`, `active` (not completed) or `done`.
function TasksApp:filteredTasks()
  if self.filter ~= "active" and self.filter ~= "done" then return self.tasks end
  local want = self.filter == "done"
  local shown = {}
  for _, t in ipairs(self.tasks) do
    if (t.completed == true) == want then shown[#shown + 1] = t end
  end
  return shown
end

if not session:getApp() then
  local app = TasksApp:new({tasks = {}})
  app:add("Buy milk")
  app:add("Write spec").completed = true
  app:add("Walk dog")
  session:createAppVariable(app)
end
