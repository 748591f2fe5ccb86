"""Shipping a student: `export` writes a run's student as a standalone model folder with a model card; `use`
runs one (or a run's chosen student) on new inputs."""
