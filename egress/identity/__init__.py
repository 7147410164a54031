"""Who is calling: the identity model and the credentials file that proves it."""
