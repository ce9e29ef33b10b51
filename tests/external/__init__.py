"""The service tested from the outside: schema fuzzing and a real server on loopback."""
