"""What starts services: the embedded local stack (and, under docker/, the compose parts)."""
