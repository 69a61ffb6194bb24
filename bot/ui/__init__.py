"""The Discord layer's rendering and interaction pieces (depends on the engine, never
the other way round): custom_id format, button layout, message rendering, the
presenter that keeps job messages live, buttons, modals."""
