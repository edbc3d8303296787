"""What leaves the machine: the HTTP transport, target safety, signing, request building,
templates and PINGs."""
