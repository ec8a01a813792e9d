"""The Samleng web service. Importing the package loads nothing: each subpackage is imported
where it is used (docs/architecture.md draws them).
"""
