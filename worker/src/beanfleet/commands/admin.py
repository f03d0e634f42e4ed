"""(placeholder until written)"""
import click

COMMANDS: list[click.Command] = []
