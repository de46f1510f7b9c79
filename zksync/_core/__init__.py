"""The recipes' logic, free of I/O: state machines that say which request to send next."""
