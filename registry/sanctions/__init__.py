"""Sanctions: suspensions of senders and organizations, and the complaint trigger."""
