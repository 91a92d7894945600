"""Access relations: which organizations a carrier connects, and the addresses each may use."""
