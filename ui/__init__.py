"""User interfaces: the askpapers CLI and the Gradio chat app."""
