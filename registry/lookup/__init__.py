"""Who is calling me (号码标记): a calling number's registered sender, for holders and phone apps."""
