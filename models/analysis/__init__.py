"""Musical facts about a song, measured from its audio: tempo, beats and key
(`tempo_key`)."""
