"""The tasks pipejit serves: one module each, registered in ``pipejit.registry``."""
