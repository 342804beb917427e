"""What belongs to the server: where things live, its settings, keys and limits, and its launcher."""
