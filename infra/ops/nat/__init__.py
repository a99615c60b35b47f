"""NAT instances at run time: where egress goes, and rotating instances one at a time."""
