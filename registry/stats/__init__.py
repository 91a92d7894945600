"""Statistics: daily rollups refreshed by a command, read by the console's charts."""
