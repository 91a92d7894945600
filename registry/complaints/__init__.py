"""Complaints: a holder reports an unwanted contact; the regulator answers in a thread."""
