"""petitions"""
