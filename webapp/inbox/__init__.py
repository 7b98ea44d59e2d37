"""The inbox and task pages: lists of tasks, claiming and urging, and task forms."""
