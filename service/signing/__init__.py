"""signing"""
