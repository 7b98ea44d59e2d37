"""The inbox: task lists by tab (`queries`, `tabs`), the task page (`taskpage`), urging and bulk
actions (`actions`). Nothing here imports Flask."""
