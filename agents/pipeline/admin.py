# ICPProfile admin (written with the ICP agent).
