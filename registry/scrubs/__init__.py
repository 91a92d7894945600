"""File scrubs: call lists of up to a million numbers checked in the background."""
