"""Block Kit out: run cards, App Home, and the buttons whose action ids come back in."""
