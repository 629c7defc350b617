"""Mistral's transcription API dialect, served under /mistral (server_url for `mistralai`)."""
