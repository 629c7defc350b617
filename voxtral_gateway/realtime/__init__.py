"""Realtime transcription: OpenAI's Realtime WebSocket protocol over the gateway's pipeline."""
