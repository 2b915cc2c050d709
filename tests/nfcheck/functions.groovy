// Evaluate Groovy functions defined in a Nextflow script outside Nextflow: reads one JSON object
// {"functions": "<def ...> source", "expression": "<call>", "bindings": {...}} on stdin, prints the
// expression's value as JSON, or {"error": message}. `error(msg)` (Nextflow's) throws.
import groovy.json.JsonOutput
import groovy.json.JsonSlurper

def request = new JsonSlurper().parse(System.in)
def binding = new Binding()
request.bindings.each { k, v -> binding.setVariable(k, v) }
def prelude = 'def error(String msg) { throw new IllegalArgumentException(msg) }\n'
def answer
try {
    answer = [ value: new GroovyShell(binding).evaluate(prelude + request.functions + '\n' + request.expression) ]
} catch (Throwable e) {
    answer = [ error: "${e.class.simpleName}: ${e.message}".toString() ]
}
println JsonOutput.toJson(answer)
