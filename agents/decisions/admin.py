# DecisionRule admin (written with the decision engine).
