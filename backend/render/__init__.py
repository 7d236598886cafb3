"""Preview rendering with Blender's own renderer; ``preview.py`` runs in a subprocess because it imports bpy."""
